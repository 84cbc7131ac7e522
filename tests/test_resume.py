"""examples/nri.py: an interrupted and resumed run is the uninterrupted run
bit for bit (CPU); checkpoints are atomic; bad resumes are refused with a
message naming the file; the recipes."""
import csv
import importlib.util
import json
import os
import os.path as osp

import pytest
import torch

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
pytestmark = pytest.mark.usefixtures('one_thread')


@pytest.fixture(scope='module')
def nri_example():
    spec = importlib.util.spec_from_file_location(
        'nri_example', osp.join(ROOT, 'examples', 'nri.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope='module')
def data_dir(tmp_path_factory):
    return str(tmp_path_factory.mktemp('nri_data'))


def tiny(data_dir, out, epochs=3, *extra):
    # 16 systems in batches of 8: 2 steps per epoch
    return ['--particles', '3', '--train', '16', '--valid', '8', '--test',
            '8', '--sim-steps', '500', '--epochs', str(epochs),
            '--batch-size', '8', '--encoder-hidden', '8', '--decoder-hidden',
            '8', '--pred-steps', '2', '--threads', '1', '--no-progress',
            '--no-plot', '--root', data_dir, '--out', str(out), *extra]


class InterruptAfter:
    """A stand-in for tqdm whose ``update`` raises KeyboardInterrupt (as
    Ctrl-C would) at training step ``steps + 1``."""
    steps = 0

    def __init__(self, *args, **kwargs):
        self.done = 0

    def update(self, n=1):
        self.done += n
        if self.done > self.steps:
            raise KeyboardInterrupt

    def set_postfix(self, *args, **kwargs):
        pass

    def write(self, msg):
        print(msg)

    def close(self):
        pass


def _without_time(rows):
    return [{k: v for k, v in row.items() if 'minutes' not in k}
            for row in rows]


def test_resumed_run_is_bit_identical(nri_example, data_dir, tmp_path,
                                      monkeypatch, capsys):
    whole, cut = tmp_path / 'whole', tmp_path / 'cut'
    nri_example.main(tiny(data_dir, whole))
    # Ctrl-C in the middle of epoch 2 (after 3 of its 2 + 2 steps)
    InterruptAfter.steps = 3
    monkeypatch.setattr(nri_example, 'tqdm', InterruptAfter)
    capsys.readouterr()
    with pytest.raises(SystemExit) as stop:
        nri_example.main(tiny(data_dir, cut))
    assert stop.value.code == 130
    err = capsys.readouterr().err
    assert err.strip().count('\n') == 0 and 'Traceback' not in err
    assert 'holds epoch 1: rerun the same command to resume' in err
    monkeypatch.undo()
    nri_example.main(tiny(data_dir, cut))  # the same command resumes
    assert 'resuming from' in capsys.readouterr().err

    a = torch.load(whole / 'checkpoint.pt', weights_only=True)
    b = torch.load(cut / 'checkpoint.pt', weights_only=True)
    assert a['epoch'] == b['epoch'] == 3
    for key, value in a['model'].items():
        assert torch.equal(value, b['model'][key]), key
    for key in ('generator', ):
        assert torch.equal(a[key], b[key])
    assert torch.equal(a['random']['torch'], b['random']['torch'])
    logs = [list(csv.DictReader(open(d / 'log.csv'))) for d in (whole, cut)]
    assert len(logs[0]) == 3 and _without_time(logs[0]) == _without_time(
        logs[1])
    tests = [json.load(open(d / 'test.json')) for d in (whole, cut)]
    for t in tests:
        for key in ('train_minutes', 'simulate_minutes', 'command'):
            t.pop(key)
    assert tests[0] == tests[1]


def test_interrupt_while_saving_keeps_the_checkpoint(nri_example, data_dir,
                                                     tmp_path, monkeypatch):
    nri_example.main(tiny(data_dir, tmp_path, 1))
    real_save = torch.save

    def save_half_then_interrupt(obj, f, *args, **kwargs):
        real_save(obj, f, *args, **kwargs)
        f.truncate(f.tell() // 2)
        raise KeyboardInterrupt
    monkeypatch.setattr(nri_example.torch, 'save', save_half_then_interrupt)
    with pytest.raises(SystemExit) as stop:
        nri_example.main(tiny(data_dir, tmp_path, 2))
    assert stop.value.code == 130
    monkeypatch.undo()
    state = torch.load(tmp_path / 'checkpoint.pt', weights_only=True)
    assert state['epoch'] == 1
    assert not [f for f in os.listdir(tmp_path) if f.endswith('.tmp')]


def test_bad_resumes_are_refused_naming_the_file(nri_example, data_dir,
                                                 tmp_path):
    nri_example.main(tiny(data_dir, tmp_path, 1))
    ckpt = str(tmp_path / 'checkpoint.pt')
    # --lr on resume was silently ignored before
    with pytest.raises(SystemExit, match=r"cannot resume .*checkpoint.pt "
                       r"with --lr 0.001: the run was trained with lr "
                       r"0.0005"):
        nri_example.main(tiny(data_dir, tmp_path, 2, '--lr', '1e-3'))
    with pytest.raises(SystemExit, match=r"changes the run \(tau: 0.5 -> "
                       r"0.7\)"):
        nri_example.main(tiny(data_dir, tmp_path, 2, '--tau', '0.7'))
    with pytest.raises(SystemExit, match=r"changes the run \(precision: "
                       r"'float32' -> 'bf16'\)"):
        nri_example.main(tiny(data_dir, tmp_path, 2, '--precision', 'bf16'))
    for damage in (b'', b'garbage'):
        with open(ckpt, 'wb') as f:
            f.write(damage)
        with pytest.raises(SystemExit, match=f"the checkpoint "
                           f"{ckpt} is unreadable"):
            nri_example.main(tiny(data_dir, tmp_path, 2))


def test_recipes(nri_example):
    paper = nri_example.parse_args(['--recipe', 'paper'])
    assert (paper.encoder_hidden, paper.decoder_hidden, paper.batch_size,
            paper.lr, paper.tau, paper.pred_steps, paper.epochs,
            paper.test_on, paper.train) == (256, 256, 128, 5e-4, 0.5, 10,
                                            500, 'best', 50000)
    assert paper.skip_first and paper.overrides == {}
    charged = nri_example.parse_args(['--recipe', 'paper', '--system',
                                      'charged'])
    assert charged.skip_first is False  # every charged pair interacts
    cpu = nri_example.parse_args(['--epochs', '7'])
    assert (cpu.recipe, cpu.encoder_hidden, cpu.decoder_hidden,
            cpu.batch_size, cpu.skip_first, cpu.test_on, cpu.epochs) == (
                'cpu', 128, 64, 64, True, 'last', 7)
    assert cpu.overrides == {'epochs': 7}


@pytest.mark.parametrize('recipe', ['cpu', 'paper'])
def test_skip_first_follows_the_system_in_every_recipe(nri_example, recipe):
    # springs: type 0 = no spring (no message); charged: every pair
    # interacts (type 0 = opposite charges attract), as in the reference
    for system, skip in (('springs', True), ('charged', False)):
        args = nri_example.parse_args(['--recipe', recipe, '--system',
                                       system])
        assert args.skip_first is skip and 'skip_first' not in args.overrides
    forced = nri_example.parse_args(['--recipe', recipe, '--system',
                                     'charged', '--skip-first'])
    assert forced.skip_first is True
    assert forced.overrides == {'skip_first': True}


@pytest.mark.parametrize('system, skip', [('charged', False),
                                          ('springs', True)])
def test_example_trains_the_reference_model(nri_example, data_dir, tmp_path,
                                            monkeypatch, system, skip):
    # `python examples/nri.py --system charged` end to end: the model it
    # trains is the reference's (decoder does not skip type 0)
    built = []

    def spy(*args, **kwargs):
        model = build_model(*args, **kwargs)
        built.append(model)
        return model

    build_model = nri_example.build_model
    monkeypatch.setattr(nri_example, 'build_model', spy)
    result = nri_example.main(['--system', system] + tiny(data_dir, tmp_path,
                                                          1))
    assert len(built) == 1 and built[0].decoder.skip_first is skip
    assert result['system'] == system and result['overrides'].keys() >= {
        'train', 'epochs'} and 'skip_first' not in result['overrides']


def test_bench_suite_uses_the_reference_model(monkeypatch):
    from pyg_relational.bench import nri as bench_nri
    built = []
    original = bench_nri.build_model

    def spy(*args, **kwargs):
        built.append(kwargs.get('skip_first'))
        return original(*args, **kwargs)

    monkeypatch.setattr(bench_nri, 'build_model', spy)
    rows = bench_nri.run_nri(quick=True, systems=('springs', 'charged'),
                             num_particles=3, num_train=8, epochs=1)
    assert built == [True, False]
    assert [r['system'] for r in rows] == ['springs', 'charged']
    with pytest.raises(ValueError, match='system'):
        bench_nri.skip_first_for('gravity')


def test_bf16_precision_trains_and_is_reported(nri_example, data_dir,
                                               tmp_path):
    assert nri_example.parse_args([]).precision == 'float32'  # the default
    result = nri_example.main(tiny(data_dir, tmp_path, 2, '--precision',
                                   'bf16'))
    assert result['precision'] == 'bf16'
    assert 0 <= result['edge_accuracy'] <= 1
    assert all(torch.isfinite(torch.tensor(result[k]))
               for k in ('nll', 'mse_1', 'mse_2'))
    log = list(csv.DictReader(open(tmp_path / 'log.csv')))
    assert len(log) == 2
    with pytest.raises(SystemExit):  # argparse: unknown choice
        nri_example.parse_args(['--precision', 'fp16'])


def test_report_names_recipe_and_tests_best_checkpoint(nri_example, data_dir,
                                                       tmp_path):
    result = nri_example.main(tiny(data_dir, tmp_path, 3, '--test-on',
                                   'best'))
    assert result['recipe'] == 'cpu' and result['test_on'] == 'best'
    log = list(csv.DictReader(open(tmp_path / 'log.csv')))
    nll = [float(row['valid_nll']) for row in log]
    assert result['tested_epoch'] == 1 + nll.index(min(nll))
    best = torch.load(tmp_path / 'best.pt', weights_only=True)
    state = torch.load(tmp_path / 'checkpoint.pt', weights_only=True)
    assert state['best']['epoch'] == result['tested_epoch']
    same = all(torch.equal(v, state['model'][k]) for k, v in best.items())
    assert same == (result['tested_epoch'] == 3)
