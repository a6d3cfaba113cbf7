"""Loopline's runtime library: the domain logic shared by the Lambda functions (shipped as a layer).

Handlers stay thin: they parse the event, call one function from here, and return a small JSON-safe result.
"""

__version__ = "0.1.0"
