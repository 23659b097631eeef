"""Peers the generated kernels are compared with, and machine measurements.

* :mod:`.cbuild`       compile small C sources to shared libraries (cached) and load them with ctypes
* :mod:`.machine`      peak FMA rate and copy bandwidth of this machine, CPU model, versions
* :mod:`.sparse_poly`  the sparse-polynomial strategy of HIP-HOP-NN's GPU variant, as a C peer
* :mod:`.hippynn_peer` hippynn's ``calc_invariants`` on PyTorch (forward, forward+backward)
* :mod:`.numpy_ref`    optinv's NumPy einsum reference evaluator, with a vjp that never forms the Jacobian
* :mod:`.generated`    the generated C kernel, through the planned ``optinv.codegen`` API
"""
