"""What more than one test module uses: hand-written fakes, sample rides, hypothesis strategies."""
