def main() -> int:  # placeholder
    return 0
