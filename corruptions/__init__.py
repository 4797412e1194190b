"""Image corruptions (KITTI-C / ImageNet-C): the registry and its functions arrive with issue 3."""
