"""What both services agree on or both run, copied into both images.

Kept free of heavy imports: gunicorn's master loads `ride_stream.logs` before it forks.
"""
