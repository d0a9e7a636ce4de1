"""Livermore's processes: one subpackage per service, each importing only livermore_common."""
