"""Real-kernel validation (memcgsim validate): the edge between the model and a Debian kernel
booted under QEMU. Nothing in the model imports this package."""
