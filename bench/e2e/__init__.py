"""End-to-end benchmark: an order's round trip POST -> ExecutionReport on the stream.

Three servers in front of the same client in one run: the fastfix gateway (FIX 4.4
initiator to the QuickFIX C++ example executor), a naive peer built the usual way
(FastAPI + uvicorn + the QuickFIX Python binding, ``naive_peer.py``) to the same
executor, and a bare granian + picows handler (``bare.py``). ``python -m bench.e2e``
(``make bench-e2e``) runs them; ``harness.py`` holds the run and the verdict.
"""
