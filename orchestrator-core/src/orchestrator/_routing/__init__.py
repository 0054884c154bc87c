"""The router's inside, one concept per module (``Router`` in :mod:`orchestrator.router`
is the façade):

- :mod:`.call`: one request (:class:`Call`) and one reserved attempt (:class:`Lease`);
- :mod:`.engine`: the one attempt engine — admit, attempt under its timeout, classify,
  account, retry or fail over — shared by chat, streams and hedging;
- :mod:`.hedge`: racing two providers on top of the engine;
- :mod:`.streaming`: opening a stream (its first text is the commit point) and delivering it;
- :mod:`.accounting`: usage, cost and budgets; :mod:`.hooks`: the lifecycle hook relay.
"""
