"""dlib's same-person threshold, without TensorFlow (serving's merge reads it on the LiteRT path)."""

# dlib's Euclidean descriptor distance below which two chips show the same person: the one home
# of this threshold (the encoder, the identity metric, the evaluation protocol and the merge read it).
SAME_PERSON_THRESHOLD = 0.6
