"""The course's experiments, built on the library: the NumPy MLP on scikit-learn's
digits (lesson 07), the plots of the calibration lessons, and the Oxford-IIIT Pet
classifier (lesson 10)."""
