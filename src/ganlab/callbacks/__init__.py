"""Lightning callbacks: sample images, evaluation, checkpoints. Each counts generator steps."""
