"""Stand-ins for programs the test bed cannot have (see default-images.yaml).

A stand-in is part of the simulated node, like the image table: it plays a program an image
would contain, so the pod around it (arguments, environment, loopback binding, the gate in
front) is tested for real. It says what it is on every page; it is never the real program.
"""
