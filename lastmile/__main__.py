from lastmile.cli import main

main()
