"""Training data, in pipeline order: the person split (``splits``), stage 1 (``align``: detect,
landmark, measure, align), stage 2 (``average``: filter and morph-average per person), the face-set
layout both write (``faceset``), stage 3 (``decompose``, ``morph``, ``composite``, ``build``: the
paper's augmentation into records), the record format (``schema``, ``records``) and the tf.data
input (``pipeline``); ``studio`` gives the expression filter its labelled examples."""
