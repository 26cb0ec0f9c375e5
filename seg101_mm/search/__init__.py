"""seg101_mm.search"""
