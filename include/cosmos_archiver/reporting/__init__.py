"""Reporting for people: the run report and operator notifications."""
