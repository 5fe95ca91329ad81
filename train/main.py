"""``python -m train.main``: train a daqe_tf model on a folder (or list) of images.

Example:
    python -m train.main --train_data /data/train --val_data /data/val \
        --run_dir runs/color --steps 20000

    python -m train.main --family daqe --texture cnn --patch_size 64 ...   # defocus-aware DAQENet

Running the same command again resumes from the run folder's last checkpoint (model,
optimizer with step and EMA, data position, best metric); ``--noresume`` starts a run only in a
new or empty folder and refuses one that holds anything, so no run is ever deleted.

Distribution (``--strategy``): ``auto`` uses MirroredStrategy when several GPUs are visible and
one device otherwise; ``mirrored`` every GPU (or every logical CPU device); ``multiworker``
MultiWorkerMirroredStrategy over the cluster in ``TF_CONFIG`` (start the same command on every
worker; the run folder must be on storage all workers see, and only the chief writes to it).
``--batch_size`` is the global batch, split evenly over the replicas.

``--mixed_precision`` computes in float16 with loss scaling (for GPUs); saved ``.keras`` models
stay float32. Scalars and validation images go to ``RUN_DIR/tensorboard``
(``tensorboard --logdir RUN_DIR``).
"""
from __future__ import annotations

import json

from absl import app, flags

from train.config import TrainConfig
from train.degradations import DegradationConfig, parse_subsampling_probs

FLAGS = flags.FLAGS
flags.DEFINE_string("run_dir", None, "Run folder: config, log, checkpoints, .keras outputs.", required=True)
flags.DEFINE_string("train_data", None, "Folder of training images, or a text file listing them.", required=True)
flags.DEFINE_string("data_root", None, "Root for relative paths inside list files (default: the list's folder).")
flags.DEFINE_string("val_data", None, "Folder or list of held-out images for validation (never an evaluation set).")
flags.DEFINE_enum("family", "qga_unet", ["qga_unet", "daqe"], "Model family.")
flags.DEFINE_enum("texture", None, ["cnn", "transformer"], "DAQE texture module (written into model_config).")
flags.DEFINE_bool("grayscale", False, "Train a grayscale (Y) model instead of RGB.")
flags.DEFINE_string("model_config", "{}", "JSON dict of model constructor arguments.")
flags.DEFINE_integer("steps", 20000, "Total optimizer steps (the LR schedule spans them).")
flags.DEFINE_integer("schedule_steps", 0, "Steps the LR schedule spans when not --steps (0): a run stopped early "
                     "on a long schedule keeps a near-constant LR, so its validations trace a learning curve.")
flags.DEFINE_integer("batch_size", 16, "Global batch size.")
flags.DEFINE_integer("patch_size", 96, "Training patch size (multiple of 16).")
flags.DEFINE_float("learning_rate", 2e-3, "Peak learning rate (cosine decay after warm-up).")
flags.DEFINE_float("min_learning_rate", 1e-5, "Final learning rate.")
flags.DEFINE_integer("warmup_steps", 200, "Linear warm-up steps.")
flags.DEFINE_float("ema_momentum", 0.995, "EMA of weights for validation and saved models (0 = off).")
flags.DEFINE_enum("loss", "l2", ["l1", "charbonnier", "l2"], "Pixel loss (L2 learns fastest for PSNR).")
flags.DEFINE_list("exit_weights", [], "Deep-supervision weight per exit (default: 0.5..1).")
flags.DEFINE_list("train_layers", [], "Train only these layers of the model (names as in model.layers; default all), "
                  "freezing the rest: e.g. texture0,exit0_head,texture1,exit1_head refines a DAQE model's early exits "
                  "and keeps its deepest exit bit-identical (give that exit weight 0 in --exit_weights).")
flags.DEFINE_float("cluster_exit_weight", 1.0, "DAQE: extra loss weight on the exit of each batch's own cluster.")
flags.DEFINE_float("defocus_loss_weight", 1.0, "DAQE: weight of the defocus head's L1 on pseudo-label cells.")
flags.DEFINE_string("label_cache_dir", "data_cache/defocus", "DAQE: cache folder of the defocus pseudo labels.")
flags.DEFINE_float("perceptual_weight", 0.0, "Weight of the VGG19 feature L1 on every exit (0 = off; needs --vgg19_weights).")
flags.DEFINE_string("vgg19_weights", None, "Keras' ImageNet vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5, for the perceptual loss.")
flags.DEFINE_float("adversarial_weight", 0.0, "Weight of the PatchGAN generator loss on every exit (0 = off).")
flags.DEFINE_float("discriminator_lr", 1e-4, "Learning rate of the PatchGAN discriminator (Adam).")
flags.DEFINE_integer("quality_min", 10, "Lowest training JPEG quality.")
flags.DEFINE_integer("quality_max", 90, "Highest training JPEG quality.")
flags.DEFINE_float("quality_low_bias", 0.5, "0 = uniform QF; towards 1 = mostly low QF.")
flags.DEFINE_float("double_jpeg_prob", 0.1, "Probability of a double JPEG with a shifted grid.")
flags.DEFINE_float("custom_table_prob", 0.1, "Probability of random (non-standard) quantization tables.")
flags.DEFINE_string("subsampling_probs", "4:2:0=0.7,4:4:4=0.2,4:2:2=0.1",
                    "Colour models: weight of each chroma subsampling of the training JPEGs.")
flags.DEFINE_float("grayscale_prob", 0.0, "Colour models: probability of a gray pair (Y in all channels, as a gray JPEG is enhanced).")
flags.DEFINE_integer("seed", 0, "Data seed.")
flags.DEFINE_integer("log_every", 50, "Steps between log lines.")
flags.DEFINE_integer("checkpoint_every", 250, "Steps between checkpoints.")
flags.DEFINE_integer("eval_every", 1000, "Steps between validations.")
flags.DEFINE_integer("snapshot_every", 0, "Steps between snapshots/step_NNNNNN.keras files (EMA weights) for learning curves; 0 = none.")
flags.DEFINE_string("init_weights", None, "A .keras file with the same --family/--model_config to start from (fine-tuning "
                    "or a longer run from shipped weights): its weights, a fresh optimizer and schedule. Ignored on resume.")
flags.DEFINE_float("time_limit_minutes", 0, "Stop (with a checkpoint) after this long; 0 = no limit.")
flags.DEFINE_enum("strategy", "auto", ["auto", "mirrored", "multiworker"],
                  "tf.distribute strategy: auto (several GPUs -> mirrored, else one device), mirrored, "
                  "multiworker (cluster from TF_CONFIG).")
flags.DEFINE_bool("resume", True, "Continue from the run folder's checkpoint; --noresume refuses a non-empty run folder.")
flags.DEFINE_bool("mixed_precision", False, "mixed_float16 compute with loss scaling (GPUs); saved models stay float32.")
flags.DEFINE_integer("threads", 0, "CPU threads for TensorFlow ops (0 = TensorFlow's default).")


def config_from_flags() -> TrainConfig:
    model_config = json.loads(FLAGS.model_config)
    if FLAGS.texture is not None:
        if FLAGS.family != "daqe":
            raise app.UsageError("--texture is a DAQE setting (--family daqe)")
        model_config["texture"] = FLAGS.texture
    return TrainConfig(
        run_dir=FLAGS.run_dir,
        train_data=FLAGS.train_data,
        val_data=FLAGS.val_data,
        data_root=FLAGS.data_root,
        family=FLAGS.family,
        grayscale=FLAGS.grayscale,
        model_config=model_config,
        steps=FLAGS.steps,
        schedule_steps=FLAGS.schedule_steps,
        batch_size=FLAGS.batch_size,
        patch_size=FLAGS.patch_size,
        learning_rate=FLAGS.learning_rate,
        min_learning_rate=FLAGS.min_learning_rate,
        warmup_steps=FLAGS.warmup_steps,
        ema_momentum=FLAGS.ema_momentum,
        loss=FLAGS.loss,
        exit_weights=tuple(float(w) for w in FLAGS.exit_weights),
        train_layers=tuple(FLAGS.train_layers),
        cluster_exit_weight=FLAGS.cluster_exit_weight,
        defocus_loss_weight=FLAGS.defocus_loss_weight,
        label_cache_dir=FLAGS.label_cache_dir,
        perceptual_weight=FLAGS.perceptual_weight,
        vgg19_weights=FLAGS.vgg19_weights,
        adversarial_weight=FLAGS.adversarial_weight,
        discriminator_lr=FLAGS.discriminator_lr,
        seed=FLAGS.seed,
        log_every=FLAGS.log_every,
        checkpoint_every=FLAGS.checkpoint_every,
        eval_every=FLAGS.eval_every,
        time_limit_minutes=FLAGS.time_limit_minutes,
        snapshot_every=FLAGS.snapshot_every,
        init_weights=FLAGS.init_weights,
        strategy=FLAGS.strategy,
        mixed_precision=FLAGS.mixed_precision,
        degradation=DegradationConfig(
            quality_min=FLAGS.quality_min,
            quality_max=FLAGS.quality_max,
            quality_low_bias=FLAGS.quality_low_bias,
            double_jpeg_prob=FLAGS.double_jpeg_prob,
            custom_table_prob=FLAGS.custom_table_prob,
            grayscale_prob=FLAGS.grayscale_prob,
            subsampling_probs=parse_subsampling_probs(FLAGS.subsampling_probs),
        ),
    )


def main(argv):
    del argv
    import keras

    if keras.backend.backend() == "jax":  # KERAS_BACKEND=jax: one device, no TensorFlow (train.jax_loop)
        from train.jax_loop import JaxTrainer

        JaxTrainer(config_from_flags(), resume=FLAGS.resume).run()
        return
    import tensorflow as tf

    if FLAGS.threads:
        tf.config.threading.set_intra_op_parallelism_threads(FLAGS.threads)
        tf.config.threading.set_inter_op_parallelism_threads(FLAGS.threads)
    from train.loop import Trainer

    Trainer(config_from_flags(), resume=FLAGS.resume).run()


if __name__ == "__main__":
    app.run(main)
