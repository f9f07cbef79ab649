"""dltrain serve: a run's model over HTTP (heavy: its modules load TensorFlow and the server).

``batch`` turns a JSON request body into the input chunks predict's readers make, ``service``
answers them with predict's own :class:`~dltrain.evaluation.predict.Predictor`, and ``app``
is the ASGI application (Starlette) that uvicorn runs.
"""
