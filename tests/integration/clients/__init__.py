"""Tests of the command-line clients and the example bot."""
