"""tfycc: a two-stream YCbCr learned image codec for ultra-low bit rates."""
__version__ = "0.1.0"
