"""The model of the kernel's mm: one module per kernel source file it stands for.

Every function here takes the `Kernel` state first and works in pages; nothing prints, opens
files or reads a clock.
"""
