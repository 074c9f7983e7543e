"""`lastmile demo`: a whole delivery day played on the real service, through the sandbox channel,
on an accelerated clock (see lastmile.demo.run)."""
