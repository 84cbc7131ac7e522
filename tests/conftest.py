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


@pytest.fixture
def one_thread():
    """Run a test on one thread: small tensors on a shared 2-core machine
    only contend with extra threads. Modules opt in with
    ``pytestmark = pytest.mark.usefixtures('one_thread')``."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
