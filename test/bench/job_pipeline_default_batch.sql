CALL pipeline.run('bench');
