"""CUDA C++ sources of the mcexplore kernels, shipped as package data (read via importlib.resources)."""
