from memtomem.cli import main

main()
