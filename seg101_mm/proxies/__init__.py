"""seg101_mm.proxies"""
