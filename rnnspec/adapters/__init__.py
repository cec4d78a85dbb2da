"""Built-in implementations for other libraries, each imported only when asked for.

``onnxruntime`` (ONNX Runtime's RNN, GRU and LSTM operators), ``keras`` (Keras' SimpleRNN,
GRU and LSTM layers on the active backend) and file candidates (``model.onnx``,
``model.keras``). A module here imports its library inside functions, so that
``rnnspec list`` can say "not installed" instead of failing.
"""
