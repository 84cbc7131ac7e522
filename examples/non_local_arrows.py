"""Where does a non-local block look? The strongest attention arrows of a
few query pixels, as in Figure 3 of Wang et al. (2018).

Trains DigitsNet with one NonLocalBlock on the 8x8 map (after the first
convolution) on scikit-learn's digits for a few epochs, then, for a few test
digits, draws from each query pixel (red dot) arrows to the pixels with the
largest attention weights alpha_ji (returned by
``block(h, return_attention_weights=True)``), thicker for larger weights.

Run: python examples/non_local_arrows.py [--out non_local_arrows.png]
"""
import argparse

import matplotlib
import torch
import torch.nn.functional as F

from pyg_relational.bench.non_local import DigitsNet, digits_data, fit_digits

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402


def strongest_arrows(model, image, queries, top):
    """``{query pixel: [(source pixel, weight), ...]}`` for one image."""
    model.eval()
    with torch.no_grad():
        h = F.relu(model._conv(0, image.unsqueeze(0)))  # [1, 16, 8, 8]
        _, (edge_index, alpha) = model.block(h, return_attention_weights=True)
    arrows = {}
    for q in queries:
        mask = edge_index[1] == q  # the edges into query pixel q
        weight, order = alpha[mask].topk(top)
        arrows[q] = list(zip(edge_index[0][mask][order].tolist(),
                             weight.tolist()))
    return arrows


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--out', default='non_local_arrows.png')
    parser.add_argument('--epochs', type=int, default=15)
    parser.add_argument('--pairwise', default='embedded_gaussian')
    parser.add_argument('--images', type=int, default=4)
    parser.add_argument('--queries', type=int, default=3)
    parser.add_argument('--top', type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)

    x_train, y_train, x_test, y_test = digits_data()
    model = DigitsNet(args.pairwise, at=1)
    fit_digits(model, x_train, y_train, args.epochs, seed=0)
    model.eval()
    with torch.no_grad():
        acc = (model(x_test).argmax(-1) == y_test).float().mean().item()

    fig, axes = plt.subplots(1, args.images,
                             figsize=(3.2 * args.images, 3.6))
    colours = ['tab:red', 'tab:blue', 'tab:green', 'tab:orange']
    for k, ax in enumerate(axes):
        image = x_test[k]  # [1, 8, 8]
        ink = image.view(-1)
        # query pixels: the most inked ones, spread over the digit
        queries = ink.argsort(descending=True)[::7][:args.queries].tolist()
        ax.imshow(image[0], cmap='gray_r', vmin=0, vmax=1)
        for c, (q, targets) in enumerate(
                strongest_arrows(model, image, queries, args.top).items()):
            colour = colours[c % len(colours)]
            qy, qx = divmod(q, 8)
            ax.plot(qx, qy, 'o', color=colour, markersize=8)
            best = targets[0][1]
            for src, w in targets:
                sy, sx = divmod(src, 8)
                if src == q:  # attends to itself: a ring
                    ax.plot(qx, qy, 'o', mfc='none', color=colour,
                            markersize=14, lw=1 + 3 * w / best)
                    continue
                ax.annotate('', xy=(sx, sy), xytext=(qx, qy),
                            arrowprops=dict(arrowstyle='->', color=colour,
                                            lw=0.5 + 2.5 * w / best,
                                            alpha=0.9))
        ax.set_title(f'label {int(y_test[k])}')
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(f'NonLocalBlock({args.pairwise}) on the 8x8 map: top-'
                 f'{args.top} attention arrows of {args.queries} query '
                 f'pixels (test acc {acc:.3f})', fontsize=10)
    fig.tight_layout()
    fig.savefig(args.out, dpi=120)
    print(f'test accuracy {acc:.4f}; saved {args.out}')


if __name__ == '__main__':
    main()
