"""Reference implementations generated from the rnnspec specs.

- :func:`reference.gold.forward`: NumPy, float64 gold standard (forward only).
- :class:`reference.nn.RNN`: PyTorch module with autograd, any device and dtype, the
  same call convention and parameter names as ``torch.nn.RNN``/``GRU``/``LSTM``.

``reference/numpy`` and ``reference/torch`` hold the generated layer functions;
the rest is the small hand-written runtime that composes them.
"""
