"""Packaging for daqe-tf.

``pip install daqe-tf`` enhances photos: numpy, Pillow, tqdm and LiteRT run the
shipped models, with no TensorFlow. Training, export and ``.keras`` models need the
``tf`` extra (TensorFlow 2.21 + Keras 3); where LiteRT has no wheel (Windows) the
shipped ``.keras`` models run with that extra instead.
"""
from setuptools import find_packages, setup

TF = ["tensorflow>=2.21,<2.22", "keras>=3.15"]
# The LiteRT runtime of the shipped models (daqe_tf.inference.litert_runner): part of the base install.
LITERT = ['ai-edge-litert>=2.3; sys_platform != "win32"']
TRAIN = TF + ["absl-py>=2.1"]
# The Apache Beam pipeline (daqe_tf.beam); 2.78 is the first to allow Pillow 13 next to the base install.
BEAM = ["apache-beam>=2.78,<3"]
DEFAULT_STEMS = ["daqe_cnn_color_r2_cascade", "daqe_cnn_gray_g3_cascade"]
WEIGHT_SUFFIXES = [".keras", ".tflite", ".tflite.json", ".md", ".config.json"]

setup(
    name="daqe-tf",
    version="0.1.0",
    description="Defocus-aware, quantization-guided JPEG quality enhancement for Keras 3 and LiteRT",
    long_description=open("README.md", encoding="utf-8").read() if __import__("os").path.exists("README.md") else "",
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    # Only the library installs; train/, export/, benchmarks/ and tests/ run from a checkout
    # (python -m train.main, python -m export.main), so no generic top-level names land in site-packages.
    packages=find_packages(include=["daqe_tf", "daqe_tf.*"]),
    # Only the shipped defaults (daqe_tf.inference.models.DEFAULT_MODELS): the Keras file, its
    # float16 LiteRT export with metadata, the model card and the resolved training config.
    package_data={"daqe_tf": [f"weights/{stem}{suffix}" for stem in DEFAULT_STEMS for suffix in WEIGHT_SUFFIXES]},
    install_requires=["numpy>=1.24", "pillow>=10.0", "tqdm>=4.64", *LITERT],
    extras_require={
        "tf": TF,
        "litert": [],  # LiteRT is in the base install; the name stays for existing install commands
        "train": TRAIN,
        "beam": BEAM,
        # jax (CPU) runs the JAX trainer's tests (KERAS_BACKEND=jax in a subprocess).
        "test": TRAIN + LITERT + BEAM + ["pytest>=7", "scikit-image>=0.22", "jax[cpu]>=0.4.36", "ruff>=0.17,<0.18"],
    },
    entry_points={"console_scripts": ["daqe=daqe_tf.cli:main"]},
)
