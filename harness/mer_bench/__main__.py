from mer_bench.cli import main

main()
