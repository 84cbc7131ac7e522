"""Doctest namespace: every docstring example may use ``torch``, ``Data`` and
the public names of :mod:`pyg_relational` without importing them."""
import pytest
import torch
from torch_geometric.data import Data

import pyg_relational


@pytest.fixture(autouse=True)
def _doctest_namespace(doctest_namespace):
    torch.manual_seed(0)
    doctest_namespace.update(torch=torch, Data=Data,
                             pyg_relational=pyg_relational)
    doctest_namespace.update({name: getattr(pyg_relational, name)
                              for name in pyg_relational.__all__})
