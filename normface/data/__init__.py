"""Training data: the on-disk face sets of data_prep and (issue 5) records and tf.data input."""
