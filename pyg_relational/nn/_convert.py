r"""``AttentionConv.from_module``: an :class:`~pyg_relational.nn.AttentionConv`
with the options and weights of PyG's ``GATConv`` / ``GATv2Conv`` (kept out
of the layer, which only names it)."""
import torch

__all__ = ['attention_from_pyg']


def attention_from_pyg(cls, module):
    """A ``cls(score='gat')`` with the weights of a
    :class:`torch_geometric.nn.GATConv` (``residual`` included), or a
    ``cls(score='gatv2')`` with those of a
    :class:`torch_geometric.nn.GATv2Conv` (``share_weights=False``)."""
    from torch_geometric.nn import GATConv, GATv2Conv
    if isinstance(module, GATv2Conv):
        if module.share_weights:
            raise ValueError("AttentionConv.from_module supports GATv2Conv "
                             "with share_weights=False; for shared weights "
                             "use pyg_relational.nn.GATv2Conv.from_module")
        pairs = (('lin_src', module.lin_l), ('lin_dst', module.lin_r),
                 ('lin_edge', module.lin_edge), ('score.att', module.att))
        options = dict(score='gatv2', qkv_bias=module.lin_l.bias is not None)
    elif isinstance(module, GATConv):
        lin = (('lin_src', module.lin), ) if module.lin is not None else (
            ('lin_src', module.lin_src), ('lin_dst', module.lin_dst))
        pairs = lin + (('score.att_src', module.att_src),
                       ('score.att_dst', module.att_dst),
                       ('lin_edge', module.lin_edge),
                       ('att_edge', module.att_edge))
        options = dict(score='gat')
    else:
        raise ValueError(f"AttentionConv.from_module expects a "
                         f"torch_geometric.nn.GATConv (got "
                         f"{type(module).__name__}); use "
                         f"MultiheadAttentionConv.from_module for "
                         f"nn.MultiheadAttention")
    res = getattr(module, 'res', None)
    conv = cls(module.in_channels, module.out_channels, heads=module.heads,
               concat=module.concat, negative_slope=module.negative_slope,
               dropout=module.dropout, add_self_loops=module.add_self_loops,
               edge_dim=module.edge_dim, fill_value=module.fill_value,
               bias=module.bias is not None, residual=res is not None,
               **options)
    ref = next(module.parameters())
    conv = conv.to(ref.device, ref.dtype)
    pairs += (('res', res), ('bias', module.bias))
    with torch.no_grad():
        for name, theirs in pairs:
            if theirs is None:
                continue
            ours = conv.get_submodule(name) if isinstance(
                theirs, torch.nn.Module) else conv.get_parameter(name)
            if isinstance(theirs, torch.nn.Module):
                ours.weight.copy_(theirs.weight)
                if getattr(theirs, 'bias', None) is not None:
                    ours.bias.copy_(theirs.bias)
            else:
                ours.copy_(theirs)
    return conv
