"""The device parametrisation of the conformance suite and the twin tests
(issue 20): every such test is collected once per available device, and an
absent device is not collected at all (neither passed nor skipped)."""
import os
import subprocess
import sys

import torch

from tests import helpers
from tests.helpers import device  # noqa: F401 (fixture: every device)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFORMANCE = 'tests/test_conformance.py'
TWINS = {  # file: the twin tests in it
    'tests/test_linear.py': ['test_twin_linear'],
    'tests/test_lattice.py': ['test_twin_conv',
                              'test_twin_conv2d_random_options'],
    'tests/test_recurrent.py': ['test_twin_rnn'],
    'tests/test_transformer.py': ['test_multihead_attention_twin',
                                  'test_encoder_layer_twin',
                                  'test_decoder_layer_twin'],
    'tests/test_non_local.py': ['test_graph_matches_paper',
                                'test_dense_matches_paper'],
    'tests/test_interaction.py': ['test_matches_dense_paper_formulation'],
    'tests/test_attention.py': ['test_gat_twin', 'test_gatv2_twin'],
    'tests/test_mpnn.py': ['test_twin_gated_graph_conv'],
    'tests/test_drop_in.py': ['test_same_seed_same_layer',
                              'test_gated_graph_conv_multigraph_and_gradients'],
}


def _collect(devices):
    """Node ids pytest collects with the device list faked to
    ``devices``."""
    env = dict(os.environ, **{helpers.DEVICES_VARIABLE: devices})
    result = subprocess.run(
        [sys.executable, '-m', 'pytest', '--collect-only', '-q',
         '-p', 'no:cacheprovider', CONFORMANCE, *TWINS],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr
    return [line for line in result.stdout.splitlines() if '::' in line]


def _on(node_id: str, device: str) -> bool:
    return f'[{device}-' in node_id or f'[{device}]' in node_id


def _as(node_id: str, device: str) -> str:
    return node_id.replace('[cpu-', f'[{device}-').replace('[cpu]',
                                                           f'[{device}]')


def test_faked_device_list_doubles_the_collection():
    cpu = _collect('cpu')
    both = _collect('cpu,cuda')
    # the conformance table: every test of it, on both devices
    conformance = [i for i in cpu if i.startswith(CONFORMANCE)]
    assert len(conformance) > 1000
    assert len([i for i in both if i.startswith(CONFORMANCE)]) == \
        2 * len(conformance)
    assert all(_on(i, 'cpu') for i in conformance)
    # an absent device is not collected
    assert not any(_on(i, 'cuda') for i in cpu)
    # exactly one CUDA copy of every CPU-parametrised test, nothing else
    on_cpu = [i for i in cpu if _on(i, 'cpu')]
    assert sorted(both) == sorted(cpu + [_as(i, 'cuda') for i in on_cpu])
    # every twin test is among them
    for path, names in TWINS.items():
        for name in names:
            ids = [i for i in both if i.startswith(f'{path}::{name}[')]
            assert ids and sum(_on(i, 'cuda') for i in ids) == \
                sum(_on(i, 'cpu') for i in ids) == len(ids) // 2, name


def test_available_devices(monkeypatch):
    monkeypatch.delenv(helpers.DEVICES_VARIABLE, raising=False)
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    assert helpers.available_devices() == ['cpu']
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)
    assert helpers.available_devices() == ['cpu', 'cuda']
    monkeypatch.setenv(helpers.DEVICES_VARIABLE, 'cuda')
    assert helpers.available_devices() == ['cuda']


def test_device_fixture_sets_tolerances_and_tf32(device):
    """On its device a test gets that device's tolerances (read by
    assert_close / assert_twin) and TF32 off."""
    kind = torch.device(device).type
    assert helpers.TOL == helpers.DEVICE_TOL[kind]
    assert not torch.backends.cuda.matmul.allow_tf32
    assert not torch.backends.cudnn.allow_tf32
    x = torch.ones(3, device=device)
    tol = helpers.DEVICE_TOL[kind][torch.float32]
    helpers.assert_close(x + tol / 4, x)


def test_device_fixture_restores_tf32_afterwards():
    """Outside a device-parametrised test PyTorch's own default is back
    (cuDNN TF32 on; the fixture of the test above turned it off)."""
    assert torch.backends.cudnn.allow_tf32
