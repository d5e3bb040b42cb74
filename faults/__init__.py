"""Fault drills on the real stack: kill, stall, slow down and flood its parts, count every ride."""
