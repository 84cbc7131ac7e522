from setuptools import find_packages, setup

setup(
    name='pyg-relational',
    version='0.1.0',
    description=('Classic neural operators (dense, convolution, recurrence, '
                 'attention, graph networks, NRI) as message passing on '
                 'sparse edge_index graphs, on PyTorch Geometric.'),
    long_description=open('README.md').read(),
    long_description_content_type='text/markdown',
    python_requires='>=3.9',
    packages=find_packages(include=['pyg_relational', 'pyg_relational.*']),
    # torch is a lower bound only: an installed torch (e.g. 2.13.0) satisfies
    # it, so pip never pulls a second one.
    install_requires=['torch>=2.3', 'torch_geometric>=2.5', 'networkx'],
    extras_require={
        'test': ['pytest', 'hypothesis', 'matplotlib', 'tqdm', 'scikit-learn'],
        'bench': ['matplotlib', 'tqdm', 'scikit-learn'],
        'full': ['torch-scatter', 'torch-sparse'],
    },
    entry_points={
        'console_scripts': ['pyg-relational=pyg_relational.bench.__main__:main'],
    },
)
