"""seg101_mm.models"""
