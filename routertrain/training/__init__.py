"""Fine-tuning: the training loop on Accelerate and the step-ordered batching it uses."""
