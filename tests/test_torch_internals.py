"""The PyTorch internals the library relies on sit behind one guarded
helper each (pyg_relational/_torch.py); without them the layers fall back
to public code and say so."""
import torch

from pyg_relational import _torch, chain_graph
from pyg_relational.nn import RecurrentConv, recurrent
from pyg_relational.nn import _dense


def test_compiling_is_false_in_eager_mode():
    assert _torch.compiling() is False


def test_fused_rnn_kernel_missing_takes_the_message_path(monkeypatch):
    layer = RecurrentConv(3, 4, cell='gru').double()
    x = torch.randn(6, 3, dtype=torch.float64)
    graph = chain_graph([4, 2])
    dense = layer(x, graph)[0]
    assert layer.last_path == 'dense'
    monkeypatch.setattr(recurrent, 'rnn_kernel', lambda name: None)
    message = layer(x, graph)[0]
    assert layer.last_path == 'message'
    assert 'torch._VF' in layer.why_not_faster['dense']
    assert torch.allclose(dense, message)


def test_flash_choice_missing_runs_the_public_kernel(monkeypatch):
    q = torch.randn(2, 2, 5, 4, dtype=torch.float64, requires_grad=True)
    want = torch.nn.functional.scaled_dot_product_attention(q, q, q)
    monkeypatch.setattr(_dense, 'flash_chosen', lambda *args: False)
    got = _dense._sdpa(q, q, q, None, False, 0.5, 0., False)
    assert torch.allclose(got, want)
    assert isinstance(_torch.flash_chosen(q.float(), q.float(), q.float(),
                                          None, False, 0.5), bool)
