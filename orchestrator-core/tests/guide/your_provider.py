"""Your provider implementation for Multi-LLM Orchestrator."""

from typing import Any

import httpx

from .base import (
    AuthenticationError,
    BaseProvider,
    GenerationParams,
    InvalidRequestError,
    ProviderConfig,
    ProviderError,
    RateLimitError,
    TimeoutError,
)


class YourProvider(BaseProvider):
    """Your custom LLM provider implementation."""
    
    # API constants (if applicable)
    DEFAULT_BASE_URL: str = "https://api.example.com/v1"
    DEFAULT_MODEL: str = "your-model"
    
    def __init__(self, config: ProviderConfig) -> None:
        """Initialize the provider.
        
        Args:
            config: Provider configuration
        """
        super().__init__(config)
        # Set default base_url if not provided
        if not self.config.base_url:
            self.config.base_url = self.DEFAULT_BASE_URL
        
        # Initialize HTTP client
        self._client = httpx.AsyncClient(
            timeout=self.config.timeout,
            verify=self.config.verify_ssl
        )
    
    async def generate(
        self,
        prompt: str,
        params: GenerationParams | None = None
    ) -> str:
        """Generate text completion from a prompt.
        
        Args:
            prompt: Input text prompt
            params: Optional generation parameters
            
        Returns:
            Generated text response
            
        Raises:
            AuthenticationError: If API authentication fails
            RateLimitError: If rate limit is exceeded
            TimeoutError: If request times out
            InvalidRequestError: If request is invalid
            ProviderError: For other provider-specific errors
        """
        # Prepare request
        url = f"{self.config.base_url}/completions"
        headers = {
            "Authorization": f"Bearer {self.config.api_key}",
            "Content-Type": "application/json"
        }
        
        # Map GenerationParams to API format
        payload = {
            "prompt": prompt,
            "model": self.config.model or self.DEFAULT_MODEL,
        }
        
        if params:
            payload["temperature"] = params.temperature
            payload["max_tokens"] = params.max_tokens
            # Add other parameters as needed
        
        # Make request with retry logic
        async def make_request() -> str:
            response = await self._client.post(url, json=payload, headers=headers)
            
            # Handle errors
            if response.status_code == 401:
                raise AuthenticationError("Invalid API key")
            elif response.status_code == 429:
                raise RateLimitError("Rate limit exceeded")
            elif response.status_code == 400:
                raise InvalidRequestError("Invalid request parameters")
            elif response.status_code != 200:
                raise ProviderError(f"API error: {response.status_code}")
            
            # Parse response
            data = response.json()
            return data["text"]  # Adjust based on your API response format
        
        # Use retry logic from BaseProvider
        return await self._retry_with_backoff(make_request)
    
    async def health_check(self) -> bool:
        """Check if the provider is healthy and available.
        
        Returns:
            True if provider is healthy, False otherwise
        """
        try:
            # Make a minimal request to check availability
            url = f"{self.config.base_url}/health"
            headers = {
                "Authorization": f"Bearer {self.config.api_key}"
            }
            response = await self._client.get(url, headers=headers, timeout=5.0)
            return response.status_code == 200
        except Exception as e:
            self.logger.warning(f"Health check failed: {e}")
            return False
    
    async def __aenter__(self):
        """Async context manager entry."""
        return self
    
    async def __aexit__(self, exc_type, exc_val, exc_tb):
        """Async context manager exit."""
        await self._client.aclose()
