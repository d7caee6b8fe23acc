"""Runners: each turns a target signal into trained baseline/FR networks, metrics and figures."""
