"""Pure evaluation metrics: depth (KITTI / NYU protocols, DEE, mCE, mRR) and VQA accuracies."""
