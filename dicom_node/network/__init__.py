"""DICOM networking: the Storage SCP (and, in later layers, the SCU that sends results)."""
