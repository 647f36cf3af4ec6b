"""What watches a run beside the engine: RSS and memory growth (``memory``), per-window figures
(``windows``), early abort on a broken budget (``abort``) and machine contention
(``contention``). Each is a ``RunObserver`` (``engine.observer``); none adds time to a call."""
