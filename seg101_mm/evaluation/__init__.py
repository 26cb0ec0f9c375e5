"""seg101_mm.evaluation"""
