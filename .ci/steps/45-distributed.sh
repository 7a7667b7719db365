# Distributed training: Open MPI's mpirun (Debian's openmpi-bin) for MPI jobs, and torch (CPU is enough) for the
# torch.distributed tests and notebook. mpi4py comes with the test extra. PyTorch's own CPU-only index is tried
# first (a far smaller download); where it can't be reached, torch comes from PyPI.
if ! command -v mpirun >/dev/null 2>&1; then
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends openmpi-bin libopenmpi-dev >/dev/null
fi
if ! python -c "import torch" 2>/dev/null; then
    uv pip install -q torch --index-url https://download.pytorch.org/whl/cpu 2>/dev/null || uv pip install -q torch
fi
mpirun --version | head -n 1
python -c "import mpi4py, torch; print('mpi4py', mpi4py.__version__, 'torch', torch.__version__)"
