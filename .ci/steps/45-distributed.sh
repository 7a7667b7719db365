# Distributed training: Open MPI's mpirun (Debian's openmpi-bin) for MPI jobs, and torch (CPU is enough) for the
# torch.distributed tests and notebook. mpi4py comes with the test extra. torch is a CPU build (see below), never
# the several-GB CUDA build.
if ! command -v mpirun >/dev/null 2>&1; then
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends openmpi-bin libopenmpi-dev >/dev/null
fi
if ! python -c "import torch" 2>/dev/null; then
    # torch 2.13.0's CPU build lies on this kind of machine's disk, where pip (not uv) finds it; PyTorch's CPU
    # index next; never PyPI's default torch, a CUDA build of several GB.
    python -m pip install -q torch==2.13.0 2>/dev/null \
        || uv pip install -q torch --index-url https://download.pytorch.org/whl/cpu
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
