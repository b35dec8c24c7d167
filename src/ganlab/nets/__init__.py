"""Plain ``nn.Module`` generators and discriminators. Each receives ``data_shape`` (one sample's shape,
read from the data module) and, for generators, ``z_dim``; no size is hard-coded in a model file."""
