import os
import os.path as osp

import pytest
import torch

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(12345)


@pytest.fixture
def data_root():
    """Folder holding ``planetoid/`` (``$PYG_RELATIONAL_DATA``, default
    ``../shared/data`` beside the checkout)."""
    return os.environ.get('PYG_RELATIONAL_DATA',
                          osp.join(osp.dirname(ROOT), 'shared', 'data'))
