"""seg101_mm.datasets"""
