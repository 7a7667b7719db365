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
# MPI inside containers: the Docker tests run MPI jobs in the test base image plus openmpi-bin (built once; the
# build fetches Debian's package, so it uses the host's network).
if command -v docker >/dev/null 2>&1 && docker image inspect nbml-test-base:bookworm >/dev/null 2>&1 \
        && ! docker image inspect nbml-test-mpi:bookworm >/dev/null 2>&1; then
    printf 'FROM nbml-test-base:bookworm\nRUN apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends openmpi-bin >/dev/null && rm -rf /var/lib/apt/lists/*\n' \
        | docker build --network host -q -t nbml-test-mpi:bookworm - >/dev/null
fi
