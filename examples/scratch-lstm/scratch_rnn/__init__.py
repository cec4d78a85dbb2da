"""A from-scratch LSTM and GRU, registered with rnnspec through an entry point."""

from scratch_rnn.model import GRUCell, LSTMCell, ScratchGRU, ScratchLSTM, ScratchRNN

__all__ = ["GRUCell", "LSTMCell", "ScratchGRU", "ScratchLSTM", "ScratchRNN"]
